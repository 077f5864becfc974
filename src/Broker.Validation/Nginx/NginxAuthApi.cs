using System.Globalization;
using Broker.Core.AppPasswords;
using Broker.Validation.Callers;
using Broker.Validation.Validation;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Validation.Nginx;

/// <summary>
/// nginx mail proxy <c>auth_http</c> endpoint (<c>GET /v1/nginx/auth</c>): lets nginx front any IMAP,
/// POP3 or SMTP server that cannot call HTTP itself. The answer is always HTTP 200 with headers;
/// nginx reads <c>Auth-Status</c> (<c>OK</c> or the message the client sees).
/// </summary>
public static partial class NginxAuthApi
{
    /// <summary>What an IMAP client sees on a wrong password; the response code matches Dovecot's.</summary>
    internal const string ImapDenied = "[AUTHENTICATIONFAILED] Authentication failed.";

    /// <summary>A temporary failure: clients retry instead of asking the user for a new password.</summary>
    internal const string ImapUnavailable = "[UNAVAILABLE] Temporary authentication failure.";

    public static RouteGroupBuilder MapNginxAuthApi(this RouteGroupBuilder group)
    {
        group.MapGet("/nginx/auth", HandleAsync).WithName("NginxAuthHttp")
            .WithSummary("nginx mail proxy auth_http: headers in, Auth-Status/Auth-Server/Auth-Port out.");
        return group;
    }

    internal static async Task<IResult> HandleAsync(HttpContext http, LoginValidator validator, IOptions<NginxAuthOptions> options, ILoggerFactory loggers, CancellationToken ct)
    {
        var o = options.Value;
        var logger = loggers.CreateLogger("Broker.Validation.Nginx.NginxAuthApi");
        var headers = http.Request.Headers;
        var response = http.Response.Headers;
        if (!NginxAuthRequest.TryParse(name => headers.TryGetValue(name, out var v) ? v.ToString() : null, out var request, out var error))
        {
            Log.BadRequest(logger, error);
            // Answer in the client's protocol when at least that header is usable.
            var protocol = headers["Auth-Protocol"].ToString().Trim().ToLowerInvariant() is "imap" or "pop3" ? headers["Auth-Protocol"].ToString().Trim().ToLowerInvariant() : "smtp";
            return Fail(response, protocol, denied: true, o);
        }

        if (request.Method is not ("plain" or "login"))
        {
            // APOP and CRAM-MD5 need the cleartext password on the server side: Broker only has HMACs.
            return Fail(response, request.Protocol, denied: true, o);
        }

        if (!o.TryGetBackend(request.Protocol, out var backend))
        {
            Log.NoBackend(logger, request.Protocol);
            return Fail(response, request.Protocol, denied: false, o);
        }

        var service = request.Protocol == "smtp" ? "submission" : request.Protocol;
        var outcome = await validator.ValidateAsync(
            new LoginAttempt(request.User, request.Password, service, request.ClientIp?.ToString(), Mech: request.Method.ToUpperInvariant(), Caller: http.Caller()),
            "nginx", ct);
        switch (outcome.Result)
        {
            case ValidationResult.Allowed:
                // The allow is already recorded (last use, counters, audit): nothing below may throw.
                // Kestrel refuses a response header value that is not ASCII by throwing, which would
                // turn a right password into an HTTP 500. Every value here is ASCII by construction
                // (an IP address, a number, a BackendPassword checked at start-up) except the username.
                response["Auth-Status"] = "OK";
                response["Auth-Server"] = backend.Address.ToString();
                response["Auth-Port"] = backend.Port.ToString(CultureInfo.InvariantCulture);
                if (outcome.Username is { } canonical && IsPrintableAscii(canonical))
                {
                    // The canonical name, so the backend sees one spelling per user. nginx copies this
                    // header verbatim, no percent-decoding, so a non-ASCII name cannot be carried in it.
                    response["Auth-User"] = canonical;
                }
                else if (outcome.Username is not null)
                {
                    // Without Auth-User nginx logs in to the backend with the name the client typed,
                    // which Broker has just accepted for this user.
                    Log.CanonicalNameNotSent(logger);
                }

                if (o.BackendPassword is { Length: > 0 } secret)
                {
                    response["Auth-Pass"] = secret;
                }

                return TypedResults.Ok();
            case ValidationResult.Denied:
                return Fail(response, request.Protocol, denied: true, o);
            default:
                return Fail(response, request.Protocol, denied: false, o);
        }
    }

    private static Microsoft.AspNetCore.Http.HttpResults.Ok Fail(IHeaderDictionary response, string protocol, bool denied, NginxAuthOptions o)
    {
        response["Auth-Status"] = (protocol, denied) switch
        {
            ("imap", true) => ImapDenied,
            ("imap", false) => ImapUnavailable,
            (_, true) => "Authentication failed",
            _ => "Temporary authentication failure, try again later",
        };
        if (protocol == "smtp")
        {
            response["Auth-Error-Code"] = denied ? "535 5.7.8" : "454 4.7.0";
        }

        // Auth-Wait lets the client retry on the same connection after a pause; on a temporary
        // failure the pause is short, on a deny it slows guessing.
        response["Auth-Wait"] = (denied ? o.FailureWaitSeconds : 1).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Ok();
    }

    /// <summary>Characters an HTTP header value can carry without Kestrel refusing them or nginx trimming them.</summary>
    internal static bool IsPrintableAscii(string value) => value.Length > 0 && value.All(c => c is >= '!' and <= '~');

    private static partial class Log
    {
        [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "nginx auth request refused as malformed: {Reason}")]
        public static partial void BadRequest(ILogger logger, string reason);

        [LoggerMessage(EventId = 4202, Level = LogLevel.Error, Message = "nginx asked for protocol {Protocol}, which has no backend in Broker:Nginx:Backends")]
        public static partial void NoBackend(ILogger logger, string protocol);

        [LoggerMessage(EventId = 4203, Level = LogLevel.Debug, Message = "Canonical username is not printable ASCII: no Auth-User sent, nginx keeps the client's login")]
        public static partial void CanonicalNameNotSent(ILogger logger);
    }
}
