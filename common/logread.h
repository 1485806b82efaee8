/* placeholder: reading CMTrace records (being written) */
#ifndef CAS_LOGREAD_H
#define CAS_LOGREAD_H
#endif
