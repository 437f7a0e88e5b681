"""The `sage` command line: app.py builds the Typer app; one module per command group parses its options,
calls one library function and prints. May import every other subpackage; nothing imports cli/.
"""
