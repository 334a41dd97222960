/** Let's Encrypt's production ACME directory: `--acme-directory` by default. */
export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
