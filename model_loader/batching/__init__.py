"""Request coordination: requests that arrive together run together, in cache groups that fit the budget."""
