using Broker.Core.Callers;
using Microsoft.AspNetCore.Http;

namespace Broker.Validation.Callers;

/// <summary>Endpoint filter: only mail servers holding an API key may ask about passwords.</summary>
public static class CallerAuthentication
{
    /// <summary>Name of the authenticated caller, set for later use (logs, audit).</summary>
    public const string CallerItem = "Broker.Caller";

    public static TBuilder RequireCallerKey<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(static async (context, next) =>
        {
            var http = context.HttpContext;
            var store = http.RequestServices.GetRequiredService<CallerKeyStore>();
            var caller = store.Authenticate(http.Request.Headers[CallerKeyOptions.HeaderName]);
            if (caller is null && !store.Loaded)
            {
                // The key may be one of those kept in Redis, not read yet: undecided, so temporary.
                http.Response.Headers.RetryAfter = "1";
                return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Temporarily unavailable",
                    detail: "Caller API keys are not loaded from the credential store yet; try again.");
            }

            if (caller is null)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized",
                    detail: $"Send a valid caller API key in the {CallerKeyOptions.HeaderName} header.");
            }

            http.Items[CallerItem] = caller;
            return await next(context);
        });

    public static string? Caller(this HttpContext context) => context.Items[CallerItem] as string;
}
