"""The `sage` command line: app.py builds the Typer app and registers the commands; one module per command
group (generate, evaluate, solve, compile, store) parses its options, calls the library and has printing.py
show the result; options.py holds the shared options, the parsing and the one error handler (SageError ->
one line, exit 2). May import every other subpackage; nothing imports cli/.
"""
