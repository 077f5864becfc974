using System.Net;
using System.Text.Json;
using System.Text.Unicode;
using Broker.Core.AppPasswords;
using Broker.Core.Hosting;
using Broker.Validation.Callers;
using Broker.Validation.MailServers;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Broker.Validation.Validation;

/// <summary>The HTTP API mail servers call: <c>POST /v1/validate</c>.</summary>
public static class ValidationApi
{
    public static RouteGroupBuilder MapValidationApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").RequireCallerKey();
        group.MapPost("/validate", ValidateAsync)
            .WithName("Validate")
            .WithSummary("Checks a username and app password for a mail service.");
        return group;
    }

    /// <summary>
    /// 200 allow, 403 deny (one fixed body whatever failed), 503 tempfail when the store could not
    /// be asked, 400 with a reason when the request itself is malformed.
    /// </summary>
    internal static async Task<Results<JsonReply<ValidateResponse>, ProblemHttpResult>> ValidateAsync(
        HttpContext http, LoginValidator validator, IOptions<ValidationOptions> options, CancellationToken ct)
    {
        var o = options.Value;
        var (request, error) = await ReadAsync(http.Request, o, ct);
        if (request is null)
        {
            return BadRequest(error!);
        }

        if (CheckFields(request, o.MaxFieldLength) is { } fieldError)
        {
            return BadRequest(fieldError);
        }

        var outcome = await validator.ValidateAsync(
            new LoginAttempt(request.Username, request.Password, request.Service, NullIfEmpty(request.RemoteIp), request.Mech, request.ClientId, request.Session, http.Caller()),
            "validate", ct);
        return outcome.Result switch
        {
            ValidationResult.Allowed => new JsonReply<ValidateResponse>(new ValidateResponse { Result = "allow", Username = outcome.Username, CredentialId = outcome.CredentialId }, ValidationJsonContext.Default.ValidateResponse),
            ValidationResult.Denied => new JsonReply<ValidateResponse>(ValidateResponse.Deny, ValidationJsonContext.Default.ValidateResponse, StatusCodes.Status403Forbidden),
            _ => TempFail(http, o),
        };
    }

    private static JsonReply<ValidateResponse> TempFail(HttpContext http, ValidationOptions o)
    {
        http.Response.Headers.RetryAfter = o.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new JsonReply<ValidateResponse>(ValidateResponse.TempFail, ValidationJsonContext.Default.ValidateResponse, StatusCodes.Status503ServiceUnavailable);
    }

    private static ProblemHttpResult BadRequest(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid request", detail: detail);

    private static async Task<(ValidateRequest? Request, string? Error)> ReadAsync(HttpRequest request, ValidationOptions o, CancellationToken ct)
    {
        using var body = await BoundedBody.ReadAsync(request, o.MaxBodyBytes, ct);
        if (body is null)
        {
            return (null, $"The body is larger than {o.MaxBodyBytes} bytes.");
        }

        if (body.Length == 0)
        {
            return (null, "The body is empty; send a JSON object with username, password and service.");
        }

        if (!Utf8.IsValid(body.Span))
        {
            return (null, "The body is not valid UTF-8.");
        }

        try
        {
            var parsed = JsonSerializer.Deserialize(body.Span, ValidationJsonContext.Default.ValidateRequest);
            return parsed is null ? (null, "The body must be a JSON object.") : (parsed, null);
        }
        catch (JsonException ex)
        {
            // Where, never what: the reader's own message can quote the offending character, and
            // that character may be part of the password.
            return (null, $"The body is not valid JSON for this API (at {ex.Path ?? "$"}, line {ex.LineNumber ?? 0}, byte {ex.BytePositionInLine ?? 0}): broken syntax, a field of the wrong type, or a field named twice.");
        }
    }

    private static string? CheckFields(ValidateRequest r, int max)
    {
        if (r.Username is null)
        {
            return "username is required.";
        }

        if (r.Password is null)
        {
            return "password is required.";
        }

        if (string.IsNullOrWhiteSpace(r.Service))
        {
            return "service is required (imap, pop3, submission, smtp, sieve).";
        }

        foreach (var (name, value) in new (string, string?)[]
                 {
                     ("username", r.Username), ("password", r.Password), ("service", r.Service), ("remoteIp", r.RemoteIp),
                     ("localIp", r.LocalIp), ("session", r.Session), ("secured", r.Secured), ("mech", r.Mech), ("clientId", r.ClientId),
                 })
        {
            if (value is { Length: var n } && n > max)
            {
                return $"{name} is longer than {max} characters.";
            }
        }

        if (!string.IsNullOrEmpty(r.RemoteIp) && !IPAddress.TryParse(r.RemoteIp, out _))
        {
            return "remoteIp is not an IP address.";
        }

        if (!string.IsNullOrEmpty(r.LocalIp) && !IPAddress.TryParse(r.LocalIp, out _))
        {
            return "localIp is not an IP address.";
        }

        if (r.RemotePort is < 0 or > 65535 || r.LocalPort is < 0 or > 65535)
        {
            return "Ports must be between 0 and 65535.";
        }

        return null;
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}
