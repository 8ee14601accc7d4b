from orgloop.cli import main

main()
