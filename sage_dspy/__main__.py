from sage_dspy.cli import main

main()
