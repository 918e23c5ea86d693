"""Link rewriting and signed tokens for click, open and unsubscribe tracking."""
