namespace Broker.Core.AppPasswords;

/// <summary>
/// The protocols an app password may be used for, and the mapping from the service names
/// mail servers report (Dovecot's <c>%{service}</c>, nginx's <c>Auth-Protocol</c>) to them.
/// </summary>
public static class AppPasswordScopes
{
    public const string Imap = "imap";
    public const string Pop3 = "pop3";
    public const string Submission = "submission";
    public const string Sieve = "sieve";

    /// <summary>Every scope an app password can carry.</summary>
    public static IReadOnlyList<string> All { get; } = [Imap, Pop3, Submission, Sieve];

    /// <summary>
    /// Maps a scope as a person or admin writes it to its canonical name. <c>smtp</c> is an alias of
    /// <c>submission</c>: both mean "send mail as this user".
    /// </summary>
    public static bool TryParse(string? value, out string scope)
    {
        scope = (value ?? string.Empty).Trim().ToLowerInvariant() switch
        {
            "imap" => Imap,
            "pop3" or "pop" => Pop3,
            "submission" or "smtp" => Submission,
            "sieve" or "managesieve" => Sieve,
            _ => string.Empty,
        };
        return scope.Length > 0;
    }

    /// <summary>
    /// Maps the service a mail server reports to the scope it needs. Postfix through Dovecot SASL
    /// reports <c>smtp</c>; Dovecot's own submission service reports <c>submission</c>.
    /// </summary>
    public static bool TryFromService(string? service, out string scope) => TryParse(service, out scope);

    /// <summary>Parses a list of scopes; false when it is empty or names an unknown scope.</summary>
    public static bool TryParseList(IEnumerable<string>? values, out IReadOnlyList<string> scopes, out string? error)
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var value in values ?? [])
        {
            if (!TryParse(value, out var scope))
            {
                scopes = [];
                error = $"Unknown scope '{value}'. Known scopes: {string.Join(", ", All)} (smtp is an alias of submission).";
                return false;
            }

            set.Add(scope);
        }

        if (set.Count == 0)
        {
            scopes = [];
            error = "At least one scope is required.";
            return false;
        }

        scopes = [.. set];
        error = null;
        return true;
    }
}
