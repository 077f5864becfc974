using System.Text.Json.Serialization;
using Broker.Core.AppPasswords;
using Broker.Core.Callers;
using Broker.Core.Hosting;
using Broker.Validation.MailServers;
using Broker.Validation.Validation;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Broker.Validation.Dovecot;

/// <summary>
/// Endpoints for Dovecot's <c>oauth2</c> passdb, the no-code alternative to the Lua passdb.
/// </summary>
/// <remarks>
/// Dovecot 2.3's introspection request carries only <c>token=</c> (no username), and app passwords
/// are keyed per user, so a bare introspection cannot identify one. The shipped configuration
/// therefore uses the password grant (<c>grant_url</c> + <c>use_grant_password = yes</c>), which
/// sends username and password; the introspection endpoint is RFC 7662-shaped for callers that
/// can add the username, and answers <c>active:false</c> for bearer tokens (Broker issues none).
/// Dovecot reads these answers in ways that make status codes dangerous (see each handler).
/// </remarks>
public static class DovecotOAuth2Api
{
    public static RouteGroupBuilder MapDovecotOAuth2Api(this RouteGroupBuilder group)
    {
        group.MapPost("/dovecot/oauth2/token", GrantAsync).WithName("DovecotPasswordGrant")
            .WithSummary("OAuth2 password grant for Dovecot's oauth2 passdb (use_grant_password = yes).");
        group.MapPost("/dovecot/oauth2/introspect", IntrospectAsync).WithName("DovecotIntrospect")
            .WithSummary("RFC 7662-style token introspection; always 200 {active} for a decided answer.");
        return group;
    }

    /// <summary>
    /// Password grant. Allow: 200 with <c>username</c> and <c>active</c> (all the fields Dovecot needs,
    /// so it does not introspect). Deny: 400 <c>invalid_grant</c>, the only error Dovecot 2.3 maps to
    /// "wrong password"; for Dovecot 2.4 200 <c>active:false</c> (see <see cref="Dovecot24Deny"/>). Undecided: 503, which Dovecot turns into a temporary failure. Any other
    /// 4xx (bad client, bad request) is also a temporary failure in Dovecot: right for a misconfiguration.
    /// </summary>
    internal static async Task<IResult> GrantAsync(HttpContext http, CallerKeyStore callers, LoginValidator validator, CancellationToken ct)
    {
        var body = await BoundedBody.ReadTextAsync(http.Request, MailServerBody.MaxBytes, ct);
        if (body is null || !WireParsers.TryParseForm(body, out var form))
        {
            return OAuthError(StatusCodes.Status400BadRequest, "invalid_request");
        }

        var caller = AuthenticateClient(http, callers, form);
        if (caller is null)
        {
            // Before the Redis-held keys are read once, an unknown key is undecided: temporary failure.
            return callers.Loaded ? OAuthError(StatusCodes.Status401Unauthorized, "invalid_client") : Unavailable(http);
        }

        if (form.GetValueOrDefault("grant_type") != "password" || !form.TryGetValue("username", out var username) || !form.TryGetValue("password", out var password))
        {
            return OAuthError(StatusCodes.Status400BadRequest, "unsupported_grant_type");
        }

        var context = DovecotAuthHeaders.Read(http.Request.Headers);
        if (context.Service is null)
        {
            // Without the service the scope cannot be checked; fail as a configuration error, not a deny.
            return OAuthError(StatusCodes.Status400BadRequest, "invalid_request", "send_auth_headers = yes is required");
        }

        var outcome = await validator.ValidateAsync(new LoginAttempt(username, password, context.Service, context.RemoteIp, Caller: caller), "dovecot-grant", ct);
        return outcome.Result switch
        {
            ValidationResult.Allowed => new JsonReply<OAuth2Reply>(
                new OAuth2Reply { Active = true, Username = outcome.Username, AccessToken = "broker-verdict", TokenType = "bearer" },
                DovecotJsonContext.Default.OAuth2Reply),
            ValidationResult.Denied when context.FromDovecot24 => new JsonReply<OAuth2Reply>(Dovecot24Deny, DovecotJsonContext.Default.OAuth2Reply),
            ValidationResult.Denied => OAuthError(StatusCodes.Status400BadRequest, "invalid_grant"),
            _ => Unavailable(http),
        };
    }

    /// <summary>
    /// A deny for Dovecot 2.4, which turns every 4xx grant reply, invalid_grant included, into a
    /// temporary failure (seen with Debian 13's 2.4.1): clients would keep a wrong password and retry
    /// for ever instead of asking the user. 2.4 maps an explicit inactive token to "wrong password"
    /// (active_attribute = active, active_value = true in the shipped file). The reply names no user:
    /// were the active check configured away, Dovecot would look for one, find none and fail
    /// temporarily, never log anyone in.
    /// </summary>
    private static readonly OAuth2Reply Dovecot24Deny = new() { Active = false, AccessToken = "denied", TokenType = "bearer" };

    /// <summary>
    /// Introspection. Every decided answer is 200 with an explicit <c>active</c>: Dovecot ignores the
    /// status of a 4xx and would log in on a reply that names a user but lacks <c>active</c>.
    /// Undecided (store down) is 503, which Dovecot turns into a temporary failure.
    /// </summary>
    internal static async Task<IResult> IntrospectAsync(HttpContext http, CallerKeyStore callers, LoginValidator validator, CancellationToken ct)
    {
        var body = await BoundedBody.ReadTextAsync(http.Request, MailServerBody.MaxBytes, ct);
        if (body is null || !WireParsers.TryParseForm(body, out var form))
        {
            return new JsonReply<OAuth2Reply>(OAuth2Reply.Inactive, DovecotJsonContext.Default.OAuth2Reply, statusCode: StatusCodes.Status400BadRequest);
        }

        var caller = AuthenticateClient(http, callers, form);
        if (caller is null)
        {
            return callers.Loaded
                ? new JsonReply<OAuth2Reply>(new OAuth2Reply { Active = false, Error = "invalid_client" }, DovecotJsonContext.Default.OAuth2Reply, statusCode: StatusCodes.Status401Unauthorized)
                : Unavailable(http);
        }

        if (!form.TryGetValue("token", out var token) || token.Length == 0 || !form.TryGetValue("username", out var username))
        {
            // A bare token names no Broker credential (app passwords are keyed by user; Broker issues no bearer tokens).
            return new JsonReply<OAuth2Reply>(OAuth2Reply.Inactive, DovecotJsonContext.Default.OAuth2Reply);
        }

        var context = DovecotAuthHeaders.Read(http.Request.Headers);
        var service = form.GetValueOrDefault("service") ?? context.Service;
        var outcome = await validator.ValidateAsync(new LoginAttempt(username, token, service, context.RemoteIp, Caller: caller), "dovecot-introspect", ct);
        return outcome.Result switch
        {
            ValidationResult.Allowed => new JsonReply<OAuth2Reply>(new OAuth2Reply { Active = true, Username = outcome.Username }, DovecotJsonContext.Default.OAuth2Reply),
            ValidationResult.Denied => new JsonReply<OAuth2Reply>(OAuth2Reply.Inactive, DovecotJsonContext.Default.OAuth2Reply),
            _ => Unavailable(http),
        };
    }

    /// <summary>The caller key may come as a header, as HTTP Basic (<c>user:key@</c> in Dovecot's URL) or as <c>client_secret</c>.</summary>
    private static string? AuthenticateClient(HttpContext http, CallerKeyStore callers, Dictionary<string, string> form)
    {
        if (callers.Authenticate(http.Request.Headers[CallerKeyOptions.HeaderName]) is { } byHeader)
        {
            return byHeader;
        }

        if (WireParsers.TryParseBasic(http.Request.Headers.Authorization, out _, out var basicSecret) && callers.Authenticate(basicSecret) is { } byBasic)
        {
            return byBasic;
        }

        return form.TryGetValue("client_secret", out var secret) ? callers.Authenticate(secret) : null;
    }

    private static JsonReply<OAuth2Reply> OAuthError(int status, string error, string? description = null) =>
        new JsonReply<OAuth2Reply>(new OAuth2Reply { Error = error, ErrorDescription = description }, DovecotJsonContext.Default.OAuth2Reply, statusCode: status);

    private static JsonReply<OAuth2Reply> Unavailable(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "5";
        return new JsonReply<OAuth2Reply>(new OAuth2Reply { Error = "temporarily_unavailable" }, DovecotJsonContext.Default.OAuth2Reply, statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}

/// <summary>The login context Dovecot adds with <c>send_auth_headers = yes</c>.</summary>
/// <param name="Service">X-Dovecot-Auth-Service (2.3) or X-Dovecot-Auth-Protocol (2.4).</param>
/// <param name="RemoteIp">The client's address (X-Dovecot-Auth-Remote).</param>
/// <param name="LocalIp">The address the client connected to (X-Dovecot-Auth-Local).</param>
/// <param name="FromDovecot24">The service came in 2.4's header, which 2.3 never sends.</param>
internal readonly record struct DovecotAuthContext(string? Service, string? RemoteIp, string? LocalIp, bool FromDovecot24 = false);

internal static class DovecotAuthHeaders
{
    public static DovecotAuthContext Read(IHeaderDictionary headers)
    {
        // Dovecot 2.3 names the service X-Dovecot-Auth-Service, 2.4 X-Dovecot-Auth-Protocol; each sends one.
        string? service = headers["X-Dovecot-Auth-Service"];
        var fromDovecot24 = false;
        if (string.IsNullOrEmpty(service))
        {
            service = headers["X-Dovecot-Auth-Protocol"];
            fromDovecot24 = !string.IsNullOrEmpty(service);
        }

        if (service is { Length: 0 or > 32 })
        {
            service = null;
        }

        var remote = WireParsers.TryParseAddress(headers["X-Dovecot-Auth-Remote"], out var rip, out _) ? rip.ToString() : null;
        var local = WireParsers.TryParseAddress(headers["X-Dovecot-Auth-Local"], out var lip, out _) ? lip.ToString() : null;
        return new DovecotAuthContext(service, remote, local, fromDovecot24 && service is not null);
    }
}

/// <summary>One reply shape for grant and introspection; absent fields are omitted.</summary>
public sealed record OAuth2Reply
{
    public static OAuth2Reply Inactive { get; } = new() { Active = false };

    [JsonPropertyName("active")]
    public bool? Active { get; init; }

    [JsonPropertyName("username")]
    public string? Username { get; init; }

    [JsonPropertyName("access_token")]
    public string? AccessToken { get; init; }

    [JsonPropertyName("token_type")]
    public string? TokenType { get; init; }

    [JsonPropertyName("error")]
    public string? Error { get; init; }

    [JsonPropertyName("error_description")]
    public string? ErrorDescription { get; init; }
}
