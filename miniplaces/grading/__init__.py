"""The grader, a second program: judge a folder of submission zips, or run on Gradescope."""
