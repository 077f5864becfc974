using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Broker.Portal.MailClients;

internal static class MailClientEndpoints
{
    /// <summary>
    /// Thunderbird autoconfig, served where Thunderbird looks for it: on the mail domain's
    /// autoconfig host (<c>/mail/config-v1.1.xml</c>) and in the domain's well-known location.
    /// It carries server names only, never credentials, so it needs no sign-in.
    /// </summary>
    public static IEndpointRouteBuilder MapMailClientEndpoints(this IEndpointRouteBuilder app)
    {
        static IResult Autoconfig(MailClientProfiles profiles) =>
            TypedResults.Text(profiles.ThunderbirdAutoconfig(), "application/xml; charset=utf-8");

        app.MapGet("/.well-known/autoconfig/mail/config-v1.1.xml", Autoconfig);
        app.MapGet("/mail/config-v1.1.xml", Autoconfig);
        return app;
    }
}
