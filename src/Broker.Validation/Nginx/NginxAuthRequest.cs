using System.Globalization;
using System.Net;
using Broker.Validation.MailServers;

namespace Broker.Validation.Nginx;

/// <summary>
/// One nginx mail-proxy <c>auth_http</c> request, read from its headers: <c>Auth-Method</c>,
/// <c>Auth-User</c>, <c>Auth-Pass</c> (nginx percent-encodes only space, <c>%</c> and control
/// characters in them; other bytes, non-ASCII included, arrive raw and Kestrel reads them as UTF-8),
/// <c>Auth-Protocol</c>, <c>Auth-Login-Attempt</c>, <c>Client-IP</c>.
/// </summary>
public sealed record NginxAuthRequest(string Method, string User, string Password, string Protocol, int Attempt, IPAddress? ClientIp)
{
    /// <summary>
    /// Parses the headers. False (with a reason that never contains a secret) when a required header
    /// is missing, badly encoded or absurd; the endpoint then denies.
    /// </summary>
    public static bool TryParse(Func<string, string?> header, out NginxAuthRequest request, out string error)
    {
        request = null!;
        var method = header("Auth-Method")?.Trim().ToLowerInvariant();
        var protocol = header("Auth-Protocol")?.Trim().ToLowerInvariant();
        if (method is null || protocol is null)
        {
            error = "Auth-Method and Auth-Protocol are required.";
            return false;
        }

        if (protocol is not ("imap" or "pop3" or "smtp"))
        {
            error = "Auth-Protocol must be imap, pop3 or smtp.";
            return false;
        }

        if (!WireParsers.TryPercentDecode(header("Auth-User"), plusIsSpace: false, out var user) || user.Length is 0 or > 512)
        {
            error = "Auth-User is missing, empty, too long or badly encoded.";
            return false;
        }

        if (!WireParsers.TryPercentDecode(header("Auth-Pass"), plusIsSpace: false, out var password) || password.Length > 512)
        {
            error = "Auth-Pass is missing, too long or badly encoded.";
            return false;
        }

        var attempt = 1;
        if (header("Auth-Login-Attempt") is { } rawAttempt && (!int.TryParse(rawAttempt, NumberStyles.None, CultureInfo.InvariantCulture, out attempt) || attempt is < 1 or > 1000))
        {
            error = "Auth-Login-Attempt is not a small positive number.";
            return false;
        }

        IPAddress? clientIp = null;
        if (header("Client-IP") is { } rawIp && (!IPAddress.TryParse(rawIp.Trim(), out clientIp)))
        {
            error = "Client-IP is not an IP address.";
            return false;
        }

        request = new NginxAuthRequest(method, user, password, protocol, attempt, clientIp);
        error = string.Empty;
        return true;
    }
}
