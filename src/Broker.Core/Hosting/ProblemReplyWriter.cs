using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Broker.Core.Hosting;

/// <summary>
/// Writes the machine-facing roles' ProblemDetails answers (validation: 400, 401, 503 before the
/// caller keys are read; gateway: 403 source not allowed, 413 body too large) in one piece with
/// their Content-Length, as the validation role's other answers are written.
/// ASP.NET Core's own writer streams the JSON, so Kestrel sends it chunked; mail servers then need
/// a second read for the last chunk, and docs/validation-api.md promises a Content-Length.
/// </summary>
/// <remarks>
/// Same body as the default writer (type, title, status, detail, traceId). Registered before
/// <c>AddProblemDetails()</c>: the first writer that can write wins (<see cref="ProblemReplyExtensions.AddBrokerProblemReplies"/>).
/// </remarks>
public sealed class ProblemReplyWriter(IOptions<ProblemDetailsOptions> options, IOptions<JsonOptions> json) : IProblemDetailsWriter
{
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");
    private static readonly MediaTypeHeaderValue ProblemMediaType = new("application/problem+json");

    /// <summary>The default writer's rule: no Accept header, or one that takes JSON.</summary>
    public bool CanWrite(ProblemDetailsContext context)
    {
        var accept = context.HttpContext.Request.GetTypedHeaders().Accept;
        return accept.Count == 0 || accept.Any(a => a.IsSubsetOf(JsonMediaType) || a.IsSubsetOf(ProblemMediaType) || JsonMediaType.IsSubsetOf(a));
    }

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        var problem = context.ProblemDetails;
        problem.Status ??= http.Response.StatusCode;
        problem.Extensions["traceId"] = Activity.Current?.Id ?? http.TraceIdentifier;
        options.Value.CustomizeProblemDetails?.Invoke(context);
        var body = JsonSerializer.SerializeToUtf8Bytes(problem, json.Value.SerializerOptions.GetTypeInfo(problem.GetType()));
        http.Response.ContentType = "application/problem+json";
        http.Response.ContentLength = body.Length;
        return new ValueTask(http.Response.Body.WriteAsync(body).AsTask());
    }
}

/// <summary>Registration of <see cref="ProblemReplyWriter"/>.</summary>
public static class ProblemReplyExtensions
{
    /// <summary>ProblemDetails with a Content-Length: call before <c>AddProblemDetails()</c>, whose writer it goes ahead of.</summary>
    public static IServiceCollection AddBrokerProblemReplies(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProblemDetailsWriter, ProblemReplyWriter>());
        return services;
    }
}
