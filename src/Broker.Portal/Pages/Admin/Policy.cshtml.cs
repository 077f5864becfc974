using Broker.Core.AppPasswords;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Admin;

public sealed class AdminPolicyModel(IOptions<PortalOptions> portal, IOptions<AppPasswordPolicyOptions> appPasswords) : PortalPage
{
    public PortalOptions Portal => portal.Value;

    public AppPasswordPolicyOptions AppPasswords => appPasswords.Value;
}
