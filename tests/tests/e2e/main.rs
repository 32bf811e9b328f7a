mod sync_diff;
