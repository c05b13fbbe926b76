// FINN's GlobalAccPool: per channel, the sum over all PIXELS pixels of a frame.
//
// A pixel is CF = C/PE beats of PE lanes. The running sums of the CF folds live in
// a small memory read asynchronously (LUT RAM). The last pixel's sums do not go back
// to it but into an output queue of CF entries, so the next frame starts
// accumulating while the result drains; the input waits only when a whole result is
// still queued. Output: the CF beats of PE sums, OUT_BITS each (FINN's output type
// holds PIXELS times the input's extreme value).
module global_accpool #(
    parameter int PE        = 1,
    parameter int CF        = 1,
    parameter int PIXELS    = 4,
    parameter int IN_BITS   = 4,
    parameter bit IN_SIGNED = 1,
    parameter int OUT_BITS  = 8
) (
    input  logic                    clk,
    input  logic                    rst_n,
    input  logic [PE*IN_BITS-1:0]   in_tdata,
    input  logic                    in_tvalid,
    output logic                    in_tready,
    output logic [PE*OUT_BITS-1:0]  out_tdata,
    output logic                    out_tvalid,
    input  logic                    out_tready
);
    localparam int FW = $clog2(CF > 1 ? CF : 2);
    localparam int PW = $clog2(PIXELS > 1 ? PIXELS : 2);
    localparam int QW = $clog2(CF + 1);
    localparam int W  = PE * OUT_BITS;

    logic [W-1:0]  acc [CF];
    logic [W-1:0]  queue [CF];
    logic [W-1:0]  sum;
    logic [FW-1:0] f, wr, rd;
    logic [PW-1:0] p;
    logic [QW-1:0] count;
    logic          last_pixel, last_fold, in_fire, out_fire, push;

    assign last_pixel = p == PW'(PIXELS - 1);
    assign last_fold  = f == FW'(CF - 1);
    assign in_tready  = !last_pixel || count != QW'(CF);
    assign in_fire    = in_tvalid && in_tready;
    assign push       = in_fire && last_pixel;
    assign out_tvalid = count != 0;
    assign out_fire   = out_tvalid && out_tready;
    assign out_tdata  = queue[rd];

    always_comb begin
        for (int l = 0; l < PE; l++) begin
            logic [OUT_BITS-1:0] x, a;
            x = IN_SIGNED ? OUT_BITS'($signed(in_tdata[l*IN_BITS +: IN_BITS]))
                          : OUT_BITS'($unsigned(in_tdata[l*IN_BITS +: IN_BITS]));
            // the first pixel starts the sum: no clearing pass between frames
            a = p == 0 ? '0 : acc[f][l*OUT_BITS +: OUT_BITS];
            sum[l*OUT_BITS +: OUT_BITS] = a + x;
        end
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            f <= '0; p <= '0; wr <= '0; rd <= '0; count <= '0;
        end else begin
            if (in_fire) begin
                f <= last_fold ? '0 : f + 1'b1;
                if (last_fold) p <= last_pixel ? '0 : p + 1'b1;
            end
            if (push) wr <= wr == FW'(CF - 1) ? '0 : wr + 1'b1;
            if (out_fire) rd <= rd == FW'(CF - 1) ? '0 : rd + 1'b1;
            count <= count + QW'(push) - QW'(out_fire);
        end
        if (in_fire && !last_pixel) acc[f] <= sum;
        if (push) queue[wr] <= sum;
    end
endmodule
