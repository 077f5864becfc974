using Broker.Core.Hosting;
using Broker.Validation.MailServers;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Broker.Validation.Dovecot;

/// <summary>
/// Dovecot's auth-policy protocol (<c>auth_policy_server_url</c>): <c>POST ?command=allow</c> before the
/// password check (and again after success), <c>POST ?command=report</c> after it.
/// </summary>
public static partial class DovecotPolicyApi
{
    public static RouteGroupBuilder MapDovecotPolicyApi(this RouteGroupBuilder group)
    {
        group.MapPost("/dovecot/policy", HandleAsync).WithName("DovecotAuthPolicy")
            .WithSummary("Dovecot auth policy: command=allow answers {status,msg}; command=report records the outcome.");
        return group;
    }

    /// <summary>
    /// 200 <c>{"status":…}</c> when decided; 400 for a malformed request; 503 when the store cannot
    /// be asked, which Dovecot treats as "policy unavailable" (login proceeds unless
    /// <c>auth_policy_reject_on_fail = yes</c>).
    /// </summary>
    internal static async Task<IResult> HandleAsync(HttpContext http, IAuthPolicy policy, ILoggerFactory loggers, CancellationToken ct)
    {
        var command = http.Request.Query["command"].ToString();
        if (command is not ("allow" or "report"))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid request", detail: "command must be allow or report.");
        }

        using var body = await BoundedBody.ReadAsync(http.Request, MailServerBody.MaxBytes, ct);
        if (body is null || !AuthPolicyRequest.TryParse(body.Span, out var request))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid request", detail: "The body must be a JSON object of at most 8 KiB.");
        }

        try
        {
            if (command == "report")
            {
                await policy.ReportAsync(request, ct);
                return new JsonReply<AuthPolicyReply>(new AuthPolicyReply { Status = 0 }, DovecotJsonContext.Default.AuthPolicyReply);
            }

            var verdict = await policy.CheckAsync(request, ct);
            return new JsonReply<AuthPolicyReply>(new AuthPolicyReply { Status = verdict.Status, Msg = verdict.Message }, DovecotJsonContext.Default.AuthPolicyReply);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or Broker.Core.AppPasswords.StoreUnavailableException)
        {
            var logger = loggers.CreateLogger("Broker.Validation.Dovecot.DovecotPolicyApi");
            Log.PolicyUnavailable(logger, ex.GetType().Name);
            http.Response.Headers.RetryAfter = "5";
            return new JsonReply<AuthPolicyReply>(new AuthPolicyReply { Status = 0 }, DovecotJsonContext.Default.AuthPolicyReply, statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "Auth policy could not decide ({ErrorType}); answering 503")]
        public static partial void PolicyUnavailable(ILogger logger, string errorType);
    }
}
