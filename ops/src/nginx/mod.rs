//! nginx: rendering the site configuration from the versioned template, `nginx -t`, reload.
