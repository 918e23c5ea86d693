from mailstats.cli import main

main()
