from sage_dspy.cli.app import main

main()
