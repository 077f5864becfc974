using System.Text.Json;
using System.Text.Json.Serialization;

namespace Broker.Validation.Validation;

/// <summary>
/// Body of <c>POST /v1/validate</c>: one login attempt as a mail server saw it. Property names
/// are camelCase on the wire. <c>username</c>, <c>password</c> and <c>service</c> are required.
/// </summary>
public sealed record ValidateRequest
{
    /// <summary>Login name as the client sent it; normalised by Broker (NFKC, trimmed, lower-case).</summary>
    public string? Username { get; init; }

    /// <summary>The app password as typed, with or without dashes, any case.</summary>
    public string? Password { get; init; }

    /// <summary>Mail service: <c>imap</c>, <c>pop3</c>, <c>submission</c>, <c>smtp</c>, <c>sieve</c>.</summary>
    public string? Service { get; init; }

    /// <summary>The mail client's address as the mail server saw it.</summary>
    public string? RemoteIp { get; init; }

    public int? RemotePort { get; init; }

    public string? LocalIp { get; init; }

    public int? LocalPort { get; init; }

    /// <summary>Mail server session id, for correlating logs.</summary>
    public string? Session { get; init; }

    /// <summary>Dovecot's <c>%{secured}</c>: empty, <c>secured</c> or <c>TLS</c>.</summary>
    public string? Secured { get; init; }

    /// <summary>SASL mechanism: <c>PLAIN</c>, <c>LOGIN</c>, … XOAUTH2/OAUTHBEARER are refused.</summary>
    public string? Mech { get; init; }

    /// <summary>Client identification (IMAP ID), for the last-use record.</summary>
    public string? ClientId { get; init; }
}

/// <summary>Every answer of the validation API has this shape; fields that do not apply are omitted.</summary>
public sealed record ValidateResponse
{
    /// <summary><c>allow</c> (200), <c>deny</c> (403) or <c>tempfail</c> (503).</summary>
    public required string Result { get; init; }

    /// <summary>The canonical username to log in as (allow only).</summary>
    public string? Username { get; init; }

    /// <summary>Id of the app password that matched (allow only).</summary>
    public string? CredentialId { get; init; }

    public static ValidateResponse Deny { get; } = new() { Result = "deny" };

    public static ValidateResponse TempFail { get; } = new() { Result = "tempfail" };
}

// A field named twice (or in two spellings: names match case-insensitively) is refused, not
// decided by the last one: another reader of the same body (a proxy, the caller's own log) may
// take the first, and "service" or "remoteIp" repeated must not change which checks apply.
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, AllowTrailingCommas = false, MaxDepth = 4, AllowDuplicateProperties = false)]
[JsonSerializable(typeof(ValidateRequest))]
[JsonSerializable(typeof(ValidateResponse))]
internal sealed partial class ValidationJsonContext : JsonSerializerContext;
