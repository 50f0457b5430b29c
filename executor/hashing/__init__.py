"""File and directory hashes exactly as DVC 3 computes them.

A file is the md5 of its bytes. A directory is the md5 of its `.dir` manifest plus ".dir".
The files DVC lists are chosen in `executor.hashing.ignore`; unchanged files are looked up
in the state database (`executor.state`) instead of being read, and the rest are read by a
thread pool (hashlib releases the GIL, so large files hash in parallel).

objects    object names (is_md5), HashInfo and DirEntry records, the `.dir` manifest format
digests    md5 of one file's bytes (DVC 3) or of a byte stream under 2.x's md5-dos2unix
readpool   md5s of many files read on a thread pool, small files in batches
hasher     Hasher: files and directories hashed, unchanged files remembered between runs
ignore     the files DVC sees in a folder: .dvcignore read as DVC reads it, the walk
"""
