from orgloop.cli import main

main(prog_name="orgloop")
