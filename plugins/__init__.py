"""Method plugins shipped with sr-desk, each registered through an entry point like any third-party plugin."""
