"""The tariff and add-on catalogue the sales head manages."""
