/* Detached signatures over a policy's exact bytes, with OpenSSL EVP.
 * Key types: Ed25519 (pure, as `openssl pkeyutl -sign -rawin`), RSA >= 2048 bits with PKCS#1 v1.5
 * and SHA-256, ECDSA P-256 with SHA-256 (DER signature), as `openssl dgst -sha256 -sign`. */
#ifndef CAS_SIG_H
#define CAS_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CAS_SIG_MAX_BYTES 65536u /* 64 KiB */
#define CAS_KEYID_HEX     16     /* first 8 bytes of SHA-256(SubjectPublicKeyInfo DER), upper hex */

/* Path of the key trusted for `site`: <dir>/<SITE>.pem (malloc'd). */
char *cas_sig_trusted_key_path(const char *trusted_keys_dir, const char *site);

/* Verify sig over data with the PEM public key in pem_path.
 * CAS_OK; CAS_E_UNTRUSTED_SITE if the key file does not exist; CAS_E_BAD_KEY if it cannot be
 * read or is of an unsupported type/size/curve; CAS_E_BAD_SIGNATURE if the signature does not
 * verify (including an empty or truncated one). keyid_out (may be NULL, CAS_KEYID_HEX + 1 bytes)
 * receives the key id whenever the key was loaded. */
cas_hr cas_sig_verify_file(const char *pem_path, const void *data, size_t len, const void *sig,
                           size_t siglen, char *keyid_out);

/* Same with the PEM text of the public key in memory. */
cas_hr cas_sig_verify_pem(const char *pem, size_t pem_len, const void *data, size_t len,
                          const void *sig, size_t siglen, char *keyid_out);

/* Sign data with a PEM private key file (cas-site). *sig_out is malloc'd. */
cas_hr cas_sig_sign_file(const char *key_path, const void *data, size_t len, uint8_t **sig_out,
                         size_t *siglen_out);

/* The public half of a PEM private key file (cas-site), as PEM text: *pem_out is malloc'd and
 * NUL-terminated. A missing, unreadable or encrypted key file: CAS_E_BAD_KEY. */
cas_hr cas_sig_public_pem_file(const char *key_path, char **pem_out, size_t *len_out);

/* Key ids, for logs: of a PEM public key file. */
cas_hr cas_sig_keyid_file(const char *pem_path, char *keyid_out);

#endif
