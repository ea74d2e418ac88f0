"""`python -m aigloo_edge` is the `aigloo` command."""

from aigloo_edge.entry import main

main()
