//! lvslab-netns: topology model and validation, the namespace builder, lab state and cleanup.
