"""Test tool: NTFS volumes carrying Volume Shadow Copy stores in the libvshadow format."""
