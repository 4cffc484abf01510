"""Bitrix24 (REST through an inbound webhook): leads to call in, call outcomes out on the lead."""
