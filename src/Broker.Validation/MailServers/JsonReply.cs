using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Broker.Validation.MailServers;

/// <summary>
/// A small JSON answer written with its Content-Length in one piece. Mail servers wait on these
/// answers during a login; a chunked reply would cost them a second read for the last chunk.
/// </summary>
public sealed class JsonReply<T>(T value, JsonTypeInfo<T> typeInfo, int statusCode = StatusCodes.Status200OK) : IResult, IStatusCodeHttpResult
{
    public int? StatusCode => statusCode;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(value, typeInfo);
        var response = httpContext.Response;
        response.StatusCode = statusCode;
        response.ContentType = "application/json; charset=utf-8";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body).AsTask();
    }
}
