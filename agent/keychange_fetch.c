/* placeholder: fetching and applying the key change (being written) */
