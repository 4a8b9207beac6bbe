//! A fake web search API (SearXNG and Brave shapes).
