using System.Text;
using HybridServing.Gateway.Forwarding;

namespace HybridServing.Gateway.Tests.Forwarding;

public sealed class ModelFieldTests
{
    [Theory]
    [InlineData("""{"model":"sql-lora","messages":[]}""", "sql-lora")]
    [InlineData("""{"messages":[{"content":"{\"model\":\"evil\"}"}],"model":"a"}""", "a")]
    [InlineData("""{"nested":{"model":"inner"},"model":"outer"}""", "outer")]
    [InlineData("""{"mod\u0065l":"escaped-name"}""", "escaped-name")]
    [InlineData("""{"model":"caf\u00e9-lora"}""", "café-lora")]
    [InlineData("""{"model":"emoji-😀"}""", "emoji-😀")]
    [InlineData(" \r\n {\"model\" : \"spaced\" } \n", "spaced")]
    public void Reads_the_top_level_model(string json, string expected)
    {
        var result = ModelField.Read(Encoding.UTF8.GetBytes(json));
        Assert.Null(result.Error);
        Assert.Equal(expected, result.Model);
    }

    [Theory]
    [InlineData("", "The request body is empty", null)]
    [InlineData("   ", "not valid JSON", null)]
    [InlineData("""{"model":"a",""", "not valid JSON", null)]
    [InlineData("""{"model":"a""", "not valid JSON", null)]
    [InlineData("""{"model":"a","messages":[{"role":"user"}""", "not valid JSON", null)]
    [InlineData("""{"model":"a"}}""", "not valid JSON", null)]
    [InlineData("""{"model":"a"} {"model":"b"}""", "not valid JSON", null)]
    [InlineData("""{"model":"a",}""", "not valid JSON", null)]
    [InlineData("""{'model':'a'}""", "not valid JSON", null)]
    [InlineData("""{"model":"a" /* c */}""", "not valid JSON", null)]
    [InlineData("""[{"model":"a"}]""", "must be a JSON object, not an array", null)]
    [InlineData("\"just a string\"", "must be a JSON object, not a string", null)]
    [InlineData("42", "must be a JSON object, not a number", null)]
    [InlineData("null", "must be a JSON object, not null", null)]
    [InlineData("""{"messages":[]}""", "Missing required parameter: 'model'.", "model")]
    [InlineData("""{"nested":{"model":"x"}}""", "Missing required parameter: 'model'.", "model")]
    [InlineData("""{"model":42}""", "expected a string, but got a number", "model")]
    [InlineData("""{"model":null}""", "expected a string, but got null", "model")]
    [InlineData("""{"model":["a"]}""", "expected a string, but got an array", "model")]
    [InlineData("""{"model":{"id":"a"}}""", "expected a string, but got an object", "model")]
    [InlineData("""{"model":true}""", "expected a string, but got a boolean", "model")]
    [InlineData("""{"model":""}""", "non-empty string", "model")]
    [InlineData("""{"model":"   "}""", "non-empty string", "model")]
    [InlineData("""{"model":"a","model":"b"}""", "appears more than once", "model")]
    [InlineData("""{"model":"a","mod\u0065l":"b"}""", "appears more than once", "model")]
    [InlineData("""{"model":"\ud800"}""", "not a valid Unicode string", "model")]
    [InlineData("""{"model":"a\x"}""", "not valid JSON", null)]
    public void Rejects_with_a_specific_message(string json, string expected, string? param)
    {
        var result = ModelField.Read(Encoding.UTF8.GetBytes(json));
        Assert.Null(result.Model);
        Assert.Contains(expected, result.Error);
        Assert.Equal(param, result.Param);
    }

    [Fact]
    public void Reports_where_the_model_token_is_and_the_user()
    {
        var json = """{"user":"al\u0069ce", "model" : "sup\u0070ort","x":1}""";
        var bytes = Encoding.UTF8.GetBytes(json);
        var result = ModelField.Read(bytes);
        Assert.Equal("support", result.Model);
        Assert.Equal("alice", result.User);
        Assert.Equal("\"sup\\u0070ort\"", Encoding.UTF8.GetString(bytes, result.ModelTokenStart, result.ModelTokenLength));
    }

    [Fact]
    public void Rejects_invalid_utf8()
    {
        byte[] inModel = [.. "{\"model\":\""u8, 0xC3, 0x28, .. "\"}"u8];
        byte[] elsewhere = [.. "{\"model\":\"a\",\"prompt\":\""u8, 0xED, 0xA0, 0x80, .. "\"}"u8];
        Assert.Contains("not valid UTF-8", ModelField.Read(inModel).Error);
        Assert.Contains("not valid UTF-8", ModelField.Read(elsewhere).Error);
    }

    [Fact]
    public void Rejects_nesting_deeper_than_64()
    {
        var json = "{\"model\":\"a\",\"x\":" + new string('[', 100) + new string(']', 100) + "}";
        Assert.Contains("not valid JSON", ModelField.Read(Encoding.UTF8.GetBytes(json)).Error);
    }

    [Fact]
    public void Rejects_overlong_model_names()
    {
        var json = $$"""{"model":"{{new string('m', ModelField.MaxModelLength + 1)}}"}""";
        Assert.Contains("longer than", ModelField.Read(Encoding.UTF8.GetBytes(json)).Error);
    }
}
