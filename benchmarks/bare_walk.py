"""The floor of any pass: walk a folder and stat every file, nothing else (run as a script).

Usage: python benchmarks/bare_walk.py FOLDER  → prints how many files it stat()ed.
"""

import os
import sys


def walk(root: str) -> int:
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


if __name__ == "__main__":
    print(walk(sys.argv[1]))
