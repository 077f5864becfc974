using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Broker.Core.AppPasswords;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Validation.Dovecot;

/// <summary>
/// Makes revocation reach open sessions: Dovecot keeps an authenticated IMAP session alive after
/// its password is revoked, so on revoke / revoke-all / disable Broker asks Dovecot's doveadm HTTP
/// API to <c>kick</c> the user (and, if configured, flush the user's auth cache entry).
/// </summary>
/// <remarks>
/// One app password cannot be mapped to the sessions it opened, so revoking one kicks all of the
/// user's sessions; clients with a still-valid app password reconnect on their own. Failures are
/// logged, never thrown: the revocation is already committed and stays so.
/// </remarks>
public sealed partial class DoveadmSessionKicker(IHttpClientFactory httpClients, IOptionsMonitor<DoveadmOptions> options, ILogger<DoveadmSessionKicker> logger) : IAppPasswordEvents
{
    public const string HttpClientName = "Broker.Doveadm";

    private const int NoUserExitCode = 68;

    public Task RevokedAsync(string owner, string id, CancellationToken ct) => KickAsync(owner, ct);

    public Task AllRevokedAsync(string owner, CancellationToken ct) => KickAsync(owner, ct);

    /// <summary>Kicks <paramref name="user"/>; returns whether Dovecot confirmed it (false when disabled or failed).</summary>
    public async Task<bool> KickAsync(string user, CancellationToken ct)
    {
        var o = options.CurrentValue;
        if (string.IsNullOrWhiteSpace(o.Url) || string.IsNullOrEmpty(o.ApiKey))
        {
            return false;
        }

        if (MaskProblem(user) is { } problem)
        {
            Log.NotKicked(logger, user, problem);
            return false;
        }

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(o.Url.TrimEnd('/') + "/"), "doveadm/v1"))
            {
                Content = new ByteArrayContent(Commands(user, o.FlushAuthCache)) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("X-Dovecot-API", Convert.ToBase64String(Encoding.UTF8.GetBytes(o.ApiKey)));
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(o.Timeout);
            using var response = await httpClients.CreateClient(HttpClientName).SendAsync(request, timeout.Token);
            var body = await response.Content.ReadAsStringAsync(timeout.Token);
            if (!response.IsSuccessStatusCode || !AllSucceeded(body))
            {
                Log.KickRejected(logger, user, (int)response.StatusCode, body.Length > 300 ? body[..300] : body);
                return false;
            }

            Log.Kicked(logger, user);
            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or UriFormatException)
        {
            Log.KickFailed(logger, user, ex.GetType().Name, ex.Message);
            return false;
        }
    }

    /// <summary>
    /// Why doveadm kick would not read <paramref name="user"/> as exactly this one user, or null when it
    /// would. kick takes a mask, not a name: <c>*</c> and <c>?</c> are wildcards, and a mask that parses
    /// as an address or <c>ip/bits</c> (inet_aton, so also <c>10</c>, <c>10.1</c>, <c>0x0a.1</c>, or
    /// anything followed by white space; inet_pton with optional brackets for IPv6) selects sessions
    /// by client address. Either would end other users' sessions.
    /// </summary>
    /// <remarks>Errs towards refusing: a refused name only keeps its own open sessions until they reconnect.</remarks>
    internal static string? MaskProblem(string user)
    {
        if (user.Length == 0)
        {
            return "an empty mask";
        }

        if (user.AsSpan().IndexOfAny('*', '?') >= 0)
        {
            return "a wildcard pattern (it contains * or ?)";
        }

        var network = user.Split('/', 2)[0];
        if (network.Contains(':', StringComparison.Ordinal))
        {
            var bare = network.StartsWith('[') && network.EndsWith(']') ? network[1..^1] : network;
            return System.Net.IPAddress.TryParse(bare, out _) ? "an IPv6 address or network" : null;
        }

        // glibc's inet_aton stops at white space and ignores the rest; before it, up to four parts
        // in decimal, octal (leading 0) or hex (0x). Anything of those characters starting with a
        // digit is refused: no real mailbox name looks like that.
        var head = network.Split([' ', '\t', '\n', '\r', '\v', '\f'], 2)[0];
        return head.Length > 0 && char.IsAsciiDigit(head[0]) && head.All(c => char.IsAsciiHexDigit(c) || c is '.' or 'x' or 'X')
            ? "an IPv4 address or network"
            : null;
    }

    /// <summary>doveadm answers one <c>[type, payload, tag]</c> per command; type <c>error</c> means it failed.</summary>
    internal static bool AllSucceeded(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                return false;
            }

            foreach (var reply in doc.RootElement.EnumerateArray())
            {
                if (reply.ValueKind != JsonValueKind.Array || reply.GetArrayLength() < 2 || reply[0].ValueKind != JsonValueKind.String)
                {
                    return false;
                }

                // Exit code 68 (EX_NOUSER) from kick means the user had no open session: nothing to end.
                var noSession = reply[0].GetString() == "error" && reply[1].ValueKind == JsonValueKind.Object
                    && reply[1].TryGetProperty("exitCode", out var code) && code.ValueKind == JsonValueKind.Number && code.GetInt32() == NoUserExitCode;
                if (reply[0].GetString() != "doveadmResponse" && !noSession)
                {
                    return false;
                }
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The doveadm JSON request: <c>[["kick",{"mask":user},"kick"], ["authCacheFlush",{"user":[user]},"flush"]]</c>.</summary>
    internal static byte[] Commands(string user, bool flushAuthCache)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartArray();
            if (flushAuthCache)
            {
                // Flush first: a kicked client reconnecting at once must not be let in from the cache.
                w.WriteStartArray();
                w.WriteStringValue("authCacheFlush");
                w.WriteStartObject();
                w.WriteStartArray("user");
                w.WriteStringValue(user);
                w.WriteEndArray();
                w.WriteEndObject();
                w.WriteStringValue("flush");
                w.WriteEndArray();
            }

            w.WriteStartArray();
            w.WriteStringValue("kick");
            w.WriteStartObject();
            w.WriteString("mask", user);
            w.WriteEndObject();
            w.WriteStringValue("kick");
            w.WriteEndArray();
            w.WriteEndArray();
        }

        return stream.ToArray();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Asked Dovecot to end the sessions of {User}")]
        public static partial void Kicked(ILogger logger, string user);

        [LoggerMessage(EventId = 4002, Level = LogLevel.Error, Message = "Dovecot refused to end the sessions of {User}: HTTP {Status} {Body}")]
        public static partial void KickRejected(ILogger logger, string user, int status, string body);

        [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Did not ask Dovecot to end the sessions of {User}: doveadm kick would read the name as {Problem} and could end other users' sessions. The revocation stands; open sessions of this user last until they reconnect")]
        public static partial void NotKicked(ILogger logger, string user, string problem);

        [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "Could not reach Dovecot to end the sessions of {User}: {ErrorType}: {Error}")]
        public static partial void KickFailed(ILogger logger, string user, string errorType, string error);
    }
}
