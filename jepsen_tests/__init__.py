"""jepsen_tests"""
