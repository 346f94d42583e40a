from lpgen.cli import main

main()
