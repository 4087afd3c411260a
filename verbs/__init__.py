"""The CLI's verbs and how they print: `render` turns results and errors into output."""
