using Broker.Core.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;

namespace Broker.Gateway.Routing;

/// <summary>
/// Receives a machine-API request body whole before it is forwarded. Dovecot's Lua HTTP client
/// always sends <c>Expect: 100-continue</c> and holds the body until it sees "100 Continue";
/// streamed through, that handshake would wait on the validation instance as well. Read here, the
/// gateway answers it at once and forwards headers and body together, without the Expect header.
/// It also caps the size: no machine-API call needs more than a few kilobytes.
/// </summary>
internal static class MachineApiBody
{
    /// <summary>Largest body accepted on <c>/v1</c>; the validation role's own limits are smaller.</summary>
    public const int MaxBytes = 16 * 1024;

    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var request = context.Request;
        // Whether a body follows is the server's call, not the headers': HTTP/2 and HTTP/3 send one
        // in frames with neither Content-Length nor Transfer-Encoding, and must be capped too.
        if (context.GetReverseProxyFeature().Route.Config.RouteId != GatewayRoutes.MachineApiRoute
            || context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            await next();
            return;
        }

        using var body = await BoundedBody.ReadAsync(request, MaxBytes, context.RequestAborted);
        if (body is null)
        {
            await Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Payload too large",
                detail: $"Machine API requests carry at most {MaxBytes} bytes.").ExecuteAsync(context);
            return;
        }

        request.Body = body.AsStream();
        request.Headers.Expect = default;
        if (request.ContentLength is null)
        {
            // Forward a known length instead of re-chunking a body that is already here.
            request.Headers.TransferEncoding = default;
            request.ContentLength = body.Length;
        }

        await next();
    }
}
