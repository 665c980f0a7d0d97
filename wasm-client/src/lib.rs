//! Hush in the browser.
