"""Admission: which request runs where and when. The ledger counts the slots held on every backend
(in this process, or fleet-wide through Redis); the picker orders the candidates and queues requests
while every backend that could serve them is full."""
