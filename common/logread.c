/* placeholder: reading CMTrace records (being written) */
