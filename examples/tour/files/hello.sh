#!/bin/sh
# Writes who ran it into the file named by its argument.
echo "hello from $(uname -s)" > "$1"
