from cprcoach.cli import main

main()
