/* Download request and job identifiers: random (v4) GUIDs, "{XXXXXXXX-XXXX-4XXX-YXXX-XXXXXXXXXXXX}"
 * in upper case with braces, as the real client writes them. */
#ifndef CAS_GUID_H
#define CAS_GUID_H

#define CAS_GUID_LEN 38 /* with braces, without NUL */

/* Writes CAS_GUID_LEN chars + NUL into out. Uses the OpenSSL CSPRNG. */
void cas_guid_new(char out[CAS_GUID_LEN + 1]);

#endif
