"""Ways in from outside: the commit API, coding-agent hooks and the mailbox."""
