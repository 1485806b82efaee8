/* Filesystem helpers shared by every module. All paths may be relative to the current folder. */
#ifndef CAS_FSUTIL_H
#define CAS_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Read a whole regular file, refusing more than max bytes (CAS_E_TOO_LARGE) and non-regular
 * files. *buf_out is malloc'd with a NUL appended (not counted in *len_out). Missing file:
 * CAS_E_FILE_MISSING. */
cas_hr cas_fs_read_file(const char *path, size_t max, char **buf_out, size_t *len_out);

/* Write all len bytes to fd, retrying short writes and EINTR; `what` names the file in errors. */
cas_hr cas_fs_write_all(int fd, const void *data, size_t len, const char *what);

/* Replace `path` atomically: write a temporary file in the same folder, fsync it, rename it over
 * path, fsync the folder. A crash leaves either the old or the new content, never a mix. */
cas_hr cas_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir -p with the given mode for created folders. */
cas_hr cas_fs_mkdirs(const char *path, mode_t mode);

/* Remove a file tree below dfd/name without following symbolic links (a planted link is
 * removed, never followed). Missing: CAS_OK. */
cas_hr cas_fs_remove_tree_at(int dfd, const char *name);
cas_hr cas_fs_remove_tree(const char *path);

/* Open the folder holding the last segment of the relative path rel below the folder root, one
 * segment at a time with O_NOFOLLOW, so nothing planted under root leads outside it; with create,
 * missing folders are made (0755). *leaf points into rel at the last segment. Returns a new
 * descriptor (root itself is not consumed), or -1 with errno. rel must be a checked package path
 * (cas_path_check). */
int cas_fs_open_parent_at(int root, const char *rel, int create, const char **leaf);

/* fsync a folder by path. */
cas_hr cas_fs_sync_dir(const char *path);

/* Join two path parts with one '/'; malloc'd (NULL only when out of memory). */
char *cas_path_join(const char *a, const char *b);

#endif
