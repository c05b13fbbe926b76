// FINN's StreamingConcat: each output pixel is FOLDS[0] beats of input 0, then
// FOLDS[1] beats of input 1, and so on (SIMD channels per beat); FOLDS entry k sits
// at [k*16 +: 16].
//
// The inputs arrive already widened to the output's element type (the generated
// wrapper sign- or zero-extends each lane), input k at [k*WIDTH +: WIDTH]. Only the
// input whose turn it is sees TREADY; one beat per cycle at full rate.
module concat_stream #(
    parameter int WIDTH = 8,
    parameter int N     = 2,
    parameter logic [N*16-1:0] FOLDS = '0
) (
    input  logic               clk,
    input  logic               rst_n,
    input  logic [N*WIDTH-1:0] in_tdata,
    input  logic [N-1:0]       in_tvalid,
    output logic [N-1:0]       in_tready,
    output logic [WIDTH-1:0]   out_tdata,
    output logic               out_tvalid,
    input  logic               out_tready
);
    localparam int SW = $clog2(N > 1 ? N : 2);

    logic [SW-1:0] sel;
    logic [15:0]   j;
    logic          free, fire, chunk_end;

    assign free      = !out_tvalid || out_tready;
    assign in_tready = free ? N'(1) << sel : '0;
    assign fire      = in_tvalid[sel] && free;
    assign chunk_end = j == FOLDS[sel*16 +: 16] - 16'd1;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            sel <= '0; j <= '0; out_tvalid <= 1'b0;
        end else begin
            if (free) out_tvalid <= fire;
            if (fire) begin
                j <= chunk_end ? '0 : j + 16'd1;
                if (chunk_end) sel <= sel == SW'(N - 1) ? '0 : sel + 1'b1;
            end
        end
        if (fire) out_tdata <= in_tdata[sel*WIDTH +: WIDTH];
    end
endmodule
