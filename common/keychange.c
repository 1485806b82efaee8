/* placeholder: the key-change document (being written) */
