"""Named operators and their accountability (issue 17 item 5): who is acting on the operator
listener (``domain``), the one gate every request there passes (``gate``: authentication, the
role by method, the audit entry of every write), what the audit log keeps of a request
(``audit``, pure), the use cases (``service``), their SQL (``repository``), the operator API's
routes for operators, tokens and the audit log (``routes``) and the console's sign-in and shell
(``console``)."""
