"""`aigloo top`: the terminal dashboard (Textual, in `app`), built on the operator tools in
`ops`. Import the submodule you need: Textual loads only when the dashboard starts."""
