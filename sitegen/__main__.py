from sitegen.cli import program

program()
