using System.Text.Json.Serialization;

namespace Broker.Validation.Dovecot;

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OAuth2Reply))]
[JsonSerializable(typeof(AuthPolicyReply))]
internal sealed partial class DovecotJsonContext : JsonSerializerContext;
